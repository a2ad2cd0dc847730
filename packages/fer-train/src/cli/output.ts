import { SingleBar, Presets } from 'cli-progress';
import type { TrainEvent } from '../trainer';

export type OutputMode = 'pretty' | 'quiet' | 'json';

/**
 * Console output for the CLI: progress bars (pretty), nothing but results (quiet) or one JSON object per line (json).
 */
export class Output {
  private bar?: SingleBar;
  private lastJsonStep = 0;

  constructor(readonly mode: OutputMode) {}

  /** A human line (pretty mode only; stderr so stdout stays parseable). */
  info(msg: string): void {
    if (this.mode === 'pretty') {
      this.stopBar();
      process.stderr.write(msg + '\n');
    }
  }

  /** A result: printed in pretty and quiet mode; in json mode emitted as `{type, ...data}`. */
  result(text: string, data: Record<string, unknown>): void {
    this.stopBar();
    if (this.mode === 'json') process.stdout.write(JSON.stringify(data) + '\n');
    else process.stdout.write(text + '\n');
  }

  json(data: Record<string, unknown>): void {
    if (this.mode === 'json') process.stdout.write(JSON.stringify(data) + '\n');
  }

  private stopBar(): void {
    this.bar?.stop();
    this.bar = undefined;
  }

  /** Progress: a bar with ETA and live loss/accuracy per epoch and during validation. */
  progress(
    label: string,
    total: number,
  ): { update(done: number, payload?: Record<string, unknown>): void; done(): void } {
    if (this.mode !== 'pretty') return { update: () => {}, done: () => {} };
    this.stopBar();
    if (!process.stderr.isTTY) {
      // Logs: a plain line at most every 20 s (and at the end), with a rate-based ETA.
      const t0 = Date.now();
      let last = t0;
      return {
        update: (d, p) => {
          const now = Date.now();
          if (now - last < 20_000 && d < total) return;
          last = now;
          const eta = d > 0 ? (((now - t0) / d) * (total - d)) / 1000 : NaN;
          process.stderr.write(
            `${label} ${d}/${total} ETA ${Number.isFinite(eta) ? `${eta.toFixed(0)}s` : '?'} ${(p?.extra as string | undefined) ?? ''}\n`,
          );
        },
        done: () => {},
      };
    }
    const bar = new SingleBar(
      {
        format: `${label} |{bar}| {value}/{total} ETA {eta_formatted} {extra}`,
        hideCursor: true,
        etaBuffer: 20,
        fps: 5,
        stream: process.stderr,
        noTTYOutput: !process.stderr.isTTY,
        barsize: 24,
      },
      Presets.shades_classic,
    );
    bar.start(total, 0, { extra: '' });
    this.bar = bar;
    return { update: (d, p) => bar.update(d, p ?? {}), done: () => this.stopBar() };
  }

  /** An `onEvent` handler for `Trainer`. */
  trainEvents(): (e: TrainEvent) => void {
    let bar: ReturnType<Output['progress']> | undefined;
    return (e) => {
      switch (e.type) {
        case 'stage':
          this.info(
            `stage ${e.stage.stage}/${e.stages}: ${e.stage.ensembleSize ? `${e.stage.ensembleSize} branch(es), ` : ''}${e.stage.epochs} epoch(s), ` +
              `lr ${Object.entries(e.stage.baseLrs)
                .map(([k, v]) => `${k}=${Number(v.toPrecision(6))}`)
                .join(' ')}`,
          );
          this.json({ ...e, stage: e.stage.stage, stageInfo: e.stage });
          break;
        case 'epoch':
          bar = this.progress(`s${e.stage} e${e.epoch + 1}/${e.epochs} train`, e.steps);
          this.json(e);
          break;
        case 'step':
          bar?.update(e.step, { extra: `loss ${e.loss.toFixed(4)} acc ${(100 * e.accuracy).toFixed(1)}%` });
          if (this.mode === 'json' && (Date.now() - this.lastJsonStep > 1000 || e.step === e.steps)) {
            this.lastJsonStep = Date.now();
            this.json(e);
          }
          break;
        case 'validate':
          if (e.done === 1) bar = this.progress(`s${e.stage} e${e.epoch + 1} validate`, e.total);
          bar?.update(e.done);
          break;
        case 'epoch-end': {
          bar?.done();
          const r = e.record;
          const val = r.valAccuracy.map((a) => (100 * a).toFixed(1)).join('/');
          this.info(
            `  stage ${r.stage} epoch ${r.epoch + 1}: loss ${r.trainLoss.toFixed(4)}  val acc ${(100 * r.valEnsembleAccuracy).toFixed(2)}% ` +
              `(branches ${val})  macro-F1 ${r.valMacroF1.toFixed(3)}${r.best ? '  *best' : ''}  ${r.seconds.toFixed(0)} s`,
          );
          this.json({ type: 'epoch-end', ...r });
          break;
        }
        case 'resumed':
          this.info(`resuming at stage ${e.position.stage}, epoch ${e.position.epoch + 1}, step ${e.position.step}`);
          this.json(e);
          break;
        case 'notice':
          this.info(`note: ${e.message}`);
          this.json(e);
          break;
        case 'stopped':
          this.info(`stopped: ${e.reason}`);
          this.json(e);
          break;
        case 'final':
          this.json({
            type: 'final',
            split: e.split,
            accuracy: e.result.ensemble.accuracy,
            macroF1: e.result.ensemble.macroF1,
            branches: e.result.branches,
            diversity: e.result.diversity,
          });
          break;
        case 'checkpoint':
          break;
      }
    };
  }
}
