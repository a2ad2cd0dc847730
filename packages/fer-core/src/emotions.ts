/**
 * Emotion labels. Every dataset maps its own codes onto `Emotion`; a model's class order is a `LabelSet`
 * saved with it, because the reference uses two orders (AffectNet/FER+ and RAF-DB, docs/method.md#affectnet, #rafdb).
 */
export type Emotion = 'neutral' | 'happy' | 'sad' | 'surprise' | 'fear' | 'disgust' | 'anger' | 'contempt';

export const EMOTIONS = [
  'neutral',
  'happy',
  'sad',
  'surprise',
  'fear',
  'disgust',
  'anger',
  'contempt',
] as const satisfies readonly Emotion[];

/** A class order: index i of a model's logits is `labels[i]`. */
export type LabelSet = readonly Emotion[];

/**
 * AffectNet's categorical order (codes 0-7), shared by FER+ after the reference's remap (docs/method.md#affectnet,
 * #ferplus).
 */
export const AFFECTNET_LABELS: LabelSet = EMOTIONS;

/** RAF-DB basic release order (file label − 1, docs/method.md#rafdb). */
export const RAFDB_LABELS: LabelSet = ['surprise', 'fear', 'disgust', 'happy', 'sad', 'anger', 'neutral'];

/** The seven basic emotions (no contempt), in AffectNet order: FER2013, JAFFE and the synthetic set use it. */
export const BASIC7_LABELS: LabelSet = ['neutral', 'happy', 'sad', 'surprise', 'fear', 'disgust', 'anger'];

export function isEmotion(x: unknown): x is Emotion {
  return typeof x === 'string' && (EMOTIONS as readonly string[]).includes(x);
}

/** Index of `emotion` in `labels`; throws a clear error when the label set does not contain it. */
export function labelIndex(labels: LabelSet, emotion: Emotion): number {
  const i = labels.indexOf(emotion);
  if (i < 0) throw new RangeError(`Emotion '${emotion}' is not in this label set (${labels.join(', ')}).`);
  return i;
}

/**
 * Common folder names of class-per-folder datasets (FER2013, CK+, JAFFE) mapped to `Emotion`.
 * Lower-case keys; callers lower-case the folder name first.
 */
export const EMOTION_ALIASES: Readonly<Record<string, Emotion>> = {
  neutral: 'neutral',
  neutrality: 'neutral',
  ne: 'neutral',
  happy: 'happy',
  happiness: 'happy',
  joy: 'happy',
  ha: 'happy',
  sad: 'sad',
  sadness: 'sad',
  sa: 'sad',
  surprise: 'surprise',
  surprised: 'surprise',
  su: 'surprise',
  fear: 'fear',
  fearful: 'fear',
  afraid: 'fear',
  fe: 'fear',
  disgust: 'disgust',
  disgusted: 'disgust',
  di: 'disgust',
  anger: 'anger',
  angry: 'anger',
  an: 'anger',
  contempt: 'contempt',
  co: 'contempt',
};
