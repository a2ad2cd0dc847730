/**
 * When the reference calls `StepLR.step()`: ESR scripts call it at the start of every epoch, before any optimiser
 * step, so the first decay already applies in epoch T−1 (docs/method.md#lr-schedule); MA-Net calls it after every
 * epoch.
 */
export type LrTiming = 'epochStart' | 'epochEnd';

export interface StepLrConfig {
  /** StepLR `step_size` T (epochs). */
  stepSize: number;
  /** StepLR `gamma` g. */
  gamma: number;
  timing: LrTiming;
}

/**
 * Multiplier of the base learning rate in 0-based epoch `epoch` of a stage:
 * g^⌊(e+1)/T⌋ when stepped at epoch start (ESR), g^⌊e/T⌋ when stepped at epoch end (MA-Net).
 */
export function stepLrFactor(epoch: number, cfg: StepLrConfig): number {
  const k = Math.floor((epoch + (cfg.timing === 'epochStart' ? 1 : 0)) / cfg.stepSize);
  return cfg.gamma ** k;
}

/**
 * A literal restatement of PyTorch's StepLR (`torch/optim/lr_scheduler.py`, chainable form): the lr is multiplied by
 * gamma whenever `last_epoch` (incremented by each `step()`) is a positive multiple of `step_size`. Used by tests to
 * check `stepLrFactor` against the code path the reference actually runs.
 */
export class TorchStepLr {
  private lastEpoch = 0;
  lr: number;
  constructor(
    baseLr: number,
    private readonly stepSize: number,
    private readonly gamma: number,
  ) {
    this.lr = baseLr;
  }
  step(): void {
    this.lastEpoch++;
    if (this.lastEpoch !== 0 && this.lastEpoch % this.stepSize === 0) this.lr *= this.gamma;
  }
}
