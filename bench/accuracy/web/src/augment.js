// Image variants for genuine pairs: each portrait is drawn onto a 640×480
// grey canvas (the size of a camera frame) with one transformation. Same-photo
// variants are easier than real second photos: the report says so.

export const loadImage = (src) => new Promise((resolve, reject) => {
  const img = new Image();
  img.onload = () => resolve(img);
  img.onerror = () => reject(new Error(`cannot load ${src}`));
  img.src = src;
});

const W = 640;
const H = 480;

function canvas(w = W, h = H) {
  const c = document.createElement('canvas');
  c.width = w;
  c.height = h;
  return c;
}

// draw paints img centred, its height `scale` of the frame's, with options.
function draw(img, { mirror = false, angle = 0, brightness = 1, scale = 0.9, blur = 0, shiftX = 0 } = {}) {
  const c = canvas();
  const ctx = c.getContext('2d', { willReadFrequently: true });
  ctx.fillStyle = '#808080';
  ctx.fillRect(0, 0, W, H);
  const filters = [];
  if (brightness !== 1) filters.push(`brightness(${brightness})`);
  if (blur) filters.push(`blur(${blur}px)`);
  ctx.filter = filters.length ? filters.join(' ') : 'none';
  ctx.translate(W / 2 + shiftX * W, H / 2);
  if (mirror) ctx.scale(-1, 1);
  ctx.rotate((angle * Math.PI) / 180);
  const h = H * scale;
  const w = (h * img.width) / img.height;
  ctx.drawImage(img, -w / 2, -h / 2, w, h);
  return c;
}

// degrade shrinks the frame to a quarter, JPEG-compresses it at low quality
// and scales it back up, slightly blurred: a poor webcam.
async function degrade(c) {
  const small = canvas(W / 4, H / 4);
  small.getContext('2d').drawImage(c, 0, 0, W / 4, H / 4);
  const jpeg = await loadImage(small.toDataURL('image/jpeg', 0.5));
  const out = canvas();
  const ctx = out.getContext('2d', { willReadFrequently: true });
  ctx.filter = 'blur(0.7px)';
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(jpeg, 0, 0, W, H);
  return out;
}

// VARIANTS names every transformation; "base" is the portrait as it is.
export const VARIANTS = {
  base: {},
  mirror: { mirror: true },
  'rotate+8': { angle: 8 },
  'rotate-8': { angle: -8 },
  dark: { brightness: 0.7 },
  bright: { brightness: 1.35 },
  close: { scale: 1.2 },
  far: { scale: 0.6, shiftX: 0.1 },
  degraded: { degrade: true },
};

export async function frame(img, name) {
  const opts = VARIANTS[name];
  if (!opts) throw new Error(`unknown variant ${name}`);
  let c = draw(img, opts);
  if (opts.degrade) c = await degrade(c);
  return c.getContext('2d', { willReadFrequently: true }).getImageData(0, 0, W, H);
}
