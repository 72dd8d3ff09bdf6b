// The protocol between this page and bench/accuracy: the Go side calls
// window.__embed(src, variant) for one image at a time; the SDK computes the
// embedding on the page and sends it to the capture server (the api named in
// ?api=…), which keeps it. __embed resolves with the SDK's last callback.
import { loadImage, frame } from './augment.js';

export const params = new URLSearchParams(location.search);
export const API = params.get('api');
export const KEY = params.get('key');

// RELAXED loosens the SDKs' capture-time gates (pose, anti-spoofing): the
// evaluation wants an embedding for every portrait, as an offline batch
// would. (SDK 3.3.3 refused everything with the distance settings relaxed
// too, so they stay at their defaults.)
export const RELAXED = {
  input_image_format: 'rgba',
  skip_antispoof: true,
  threshold_user_right: 0,
  threshold_user_left: 1,
  threshold_profile_predict: 0.99,
  threshold_high_vertical_predict: -1,
  threshold_down_vertical_predict: 1,
  disable_predict_mf: true,
};

const images = new Map();

function summary(r) {
  if (!r || typeof r !== 'object') return r;
  const { best_image, imageData, portrait, href, ...rest } = r;
  return rest;
}

// install exposes __embed once load() has loaded the SDK; predictImage(image,
// callback) runs the SDK's predict on one ImageData and resolves when done.
export async function install(load, predictImage) {
  window.__ready = false;
  const loaded = await load();
  console.log('accuracy: SDK loaded', JSON.stringify(loaded));
  if (!loaded || loaded.support === false) {
    window.__loadError = `SDK not supported: ${JSON.stringify(loaded)}`;
    return;
  }
  window.__embed = async (src, variant) => {
    if (!images.has(src)) images.set(src, await loadImage(src));
    const data = await frame(images.get(src), variant);
    // The SDK calls back once it has the server's answer (or has found no
    // face); its own promise can resolve before that.
    const calls = [];
    let done;
    const answered = new Promise((resolve) => { done = resolve; });
    const started = predictImage(data, (r) => { calls.push(summary(r)); done(); });
    Promise.resolve(started).then((r) => console.log('accuracy: predict returned', JSON.stringify(summary(r))));
    const timeout = new Promise((resolve) => setTimeout(resolve, 20000));
    await Promise.race([answered.then(() => started), timeout]);
    return JSON.stringify(calls);
  };
  window.__ready = true;
}
