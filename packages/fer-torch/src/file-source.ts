import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { checkRange, type ByteSource } from './bytes';
import { TorchFormatError } from './errors';

/** Node-only: random access to a checkpoint file without reading it whole. */
export function fileSource(path: string): ByteSource {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new TorchFormatError(
      `Cannot open checkpoint ${path}: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}.`,
      { hint: 'Check the path.', cause: e },
    );
  }
  let size: number;
  try {
    const st = fstatSync(fd);
    if (!st.isFile())
      throw new TorchFormatError(
        `Cannot read checkpoint ${path}: it is not a regular file (a folder?). Pass the .pt/.pth/.safetensors file itself.`,
      );
    size = st.size;
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  let open = true;
  return {
    name: path,
    size,
    read(offset, length) {
      checkRange(this, offset, length);
      const out = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const n = readSync(fd, out, done, length - done, offset + done);
        if (n <= 0)
          throw new TorchFormatError(
            `${path}: the file shrank while reading (got ${done} of ${length} bytes at ${offset}).`,
          );
        done += n;
      }
      return out;
    },
    close() {
      if (open) closeSync(fd);
      open = false;
    },
  };
}
