// @privateid/cryptonets-web-sdk 3.3.3 on the page of page.js.
import { loadPrivIdModule, predict1FA } from '@privateid/cryptonets-web-sdk';
import { API, KEY, RELAXED, install } from './page.js';

// 3.3.3 answers nothing when disable_predict_mf is set (it predicts on one
// frame anyway).
const { disable_predict_mf: _, ...config } = RELAXED;

install(
  () => loadPrivIdModule(`${API}/node`, KEY),
  (image, callback) => predict1FA(callback, config, undefined, [image]),
).catch((e) => { window.__loadError = String(e && e.stack ? e.stack : e); });
