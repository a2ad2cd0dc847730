declare module 'cli-progress' {
  export interface Options {
    format?: string;
    hideCursor?: boolean;
    clearOnComplete?: boolean;
    stopOnComplete?: boolean;
    etaBuffer?: number;
    fps?: number;
    stream?: NodeJS.WritableStream;
    noTTYOutput?: boolean;
    barsize?: number;
  }
  export class SingleBar {
    constructor(opt: Options, preset?: object);
    start(total: number, start: number, payload?: Record<string, unknown>): void;
    update(current: number, payload?: Record<string, unknown>): void;
    setTotal(total: number): void;
    stop(): void;
  }
  export const Presets: { shades_classic: object; shades_grey: object; legacy: object; rect: object };
}
