// Drives PrivateID's web SDK, unchanged, against the biomatch server named
// in ?api=…&key=… (a short-lived session key: the tenant's key never
// reaches the page): check the key, enroll a face, predict it (K=2) and a
// variant of it, a different face, try to delete (refused to a session),
// wait for the server to delete, predict again. Everything the
// SDK reports goes to window.__e2e for the Go test to read.
import { loadPrivIdModule, enroll, predict, deleteUser } from '@privateid/cryptonets-web-sdk-alpha';

const params = new URLSearchParams(location.search);
const API = params.get('api');
const KEY = params.get('key');
const VERSION = 'FACE3_1';

const state = { steps: [], done: false, error: null };
window.__e2e = state;
const step = (name, value) => {
  state.steps.push({ name, value });
  document.getElementById('log').textContent += `${name}: ${JSON.stringify(value)}\n`;
};

const loadImage = (src) => new Promise((resolve, reject) => {
  const img = new Image();
  img.onload = () => resolve(img);
  img.onerror = () => reject(new Error(`cannot load ${src}`));
  img.src = src;
});

// The portrait's face: skimage's astronaut.png is 512×512, the face about here.
const FACE = { x: 125, y: 0, w: 200, h: 240 };

// draw paints the face box of img, scaled onto a grey canvas, with options.
function draw(ctx, img, { mirror = false, angle = 0, brightness = 1, crop = FACE } = {}) {
  const { width: W, height: H } = ctx.canvas;
  ctx.save();
  ctx.fillStyle = '#808080';
  ctx.fillRect(0, 0, W, H);
  ctx.filter = brightness === 1 ? 'none' : `brightness(${brightness})`;
  ctx.translate(W / 2, H / 2);
  if (mirror) ctx.scale(-1, 1);
  ctx.rotate((angle * Math.PI) / 180);
  const h = H * 0.8;
  const w = (h * crop.w) / crop.h;
  ctx.drawImage(img, crop.x, crop.y, crop.w, crop.h, -w / 2, -h / 2, w, h);
  ctx.restore();
}

function imageData(img, opts) {
  const canvas = document.createElement('canvas');
  canvas.width = 640;
  canvas.height = 480;
  const ctx = canvas.getContext('2d');
  draw(ctx, img, opts);
  return ctx.getImageData(0, 0, canvas.width, canvas.height);
}

const quiet = { skip_antispoof: true, threshold_user_right: 0, threshold_user_left: 1, input_image_format: 'rgba' };

// runUntil calls op with a callback until accept(result) holds or tries run out.
async function runUntil(name, op, accept, tries = 20) {
  let last = null;
  for (let i = 0; i < tries; i++) {
    const result = await new Promise((resolve) => {
      op((r) => { last = r; if (accept(r)) resolve(r); }).then(() => resolve(last));
    });
    step(`${name}#${i}`, summary(result));
    if (result && accept(result)) return result;
  }
  throw new Error(`${name}: no acceptable result after ${tries} tries (last ${JSON.stringify(summary(last))})`);
}

function summary(r) {
  if (!r || typeof r !== 'object') return r;
  const { best_image, imageData, portrait, ...rest } = r;
  return rest;
}

async function main() {
  const named = { base_url: `${API}/node`, enroll: `${API}/node/${VERSION}/enroll`, predict: `${API}/node/${VERSION}/predict`,
    deleteUser: `${API}/node/${VERSION}/deleteUser`, delete: `${API}/node/${VERSION}/deleteUser` };
  const loaded = await loadPrivIdModule({ api_url: { collections: { default: { named_urls: named } } }, api_key: KEY });
  step('load', loaded);
  if (!loaded || loaded.support === false) throw new Error(`SDK not supported: ${JSON.stringify(loaded)}`);

  const portrait = await loadImage('face.png');
  const stranger = await loadImage('stranger.png').catch(() => null);

  // Enroll from a <video> fed by the mirrored photo, as a camera would.
  const canvas = document.createElement('canvas');
  canvas.width = 640;
  canvas.height = 480;
  const ctx = canvas.getContext('2d');
  const paint = () => draw(ctx, portrait, { mirror: true });
  paint();
  const timer = setInterval(paint, 40);
  const video = document.getElementById('video');
  video.srcObject = canvas.captureStream(25);
  await video.play();

  const enrolled = await runUntil('enroll', (callback) => enroll({ callback, config: { ...quiet, disable_enroll_mf: true }, element: 'video' }),
    (r) => r && typeof r.puid === 'string' && r.puid.length > 0 && r.puid !== '-1', 10);
  clearInterval(timer);
  step('enrolled', { puid: enrolled.puid, guid: enrolled.guid, score: enrolled.score });

  const predictOnce = (name, img, tries = 10) => runUntil(name,
    (callback) => predict({ callback, image: img, config: { ...quiet, disable_predict_mf: true, neighbors: 2 } }),
    (r) => r && r.puid !== undefined && r.puid !== null && r.puid !== '', tries);

  const same = await predictOnce('predict', imageData(portrait, { mirror: true }));
  step('predicted', summary(same));
  for (const [name, opts] of Object.entries({
    'variant-mirror': { mirror: false },
    'variant-rotate': { mirror: true, angle: 6 },
    'variant-bright': { mirror: true, brightness: 1.25 },
    'variant-crop': { mirror: true, crop: { x: 140, y: 15, w: 170, h: 210 } },
  })) {
    step(name, summary(await predictOnce(name, imageData(portrait, opts))));
  }
  if (stranger) {
    // skimage's cameraman: a different person, in near-profile behind a camera.
    // The SDK may refuse it as a face; that is recorded, not a failure.
    try {
      step('stranger', summary(await predictOnce('stranger', imageData(stranger, { crop: { x: 130, y: 45, w: 150, h: 180 } }), 6)));
    } catch (e) {
      step('stranger', { refused_by_sdk: String(e.message || e) });
    }
  }

  // The page holds a session key, which may never delete: the SDK's delete
  // is refused, and the app's server deletes through /v1 with its own key.
  // (On a refusal the SDK never calls back: the wait ends after its 5 s.)
  const deleted = await Promise.race([
    new Promise((resolve) => deleteUser({ uuid: enrolled.puid, callback: resolve })),
    new Promise((resolve) => setTimeout(() => resolve({ no_callback_after_ms: 6000 }), 6000)),
  ]);
  step('deleted', deleted);
  while (!window.__serverDeleted) await new Promise((resolve) => setTimeout(resolve, 100));
  step('after-delete', summary(await predictOnce('after-delete', imageData(portrait, { mirror: true }))));
}

main().catch((e) => { state.error = String(e && e.stack ? e.stack : e); step('error', state.error); })
  .finally(() => { state.done = true; });
