// @privateid/cryptonets-web-sdk-alpha 4.4.3-alpha on the page of page.js.
import { loadPrivIdModule, predict } from '@privateid/cryptonets-web-sdk-alpha';
import { API, KEY, RELAXED, install } from './page.js';

const VERSION = 'FACE3_1';
install(
  () => loadPrivIdModule({
    api_url: { collections: { default: { named_urls: {
      base_url: `${API}/node`, predict: `${API}/node/${VERSION}/predict`, enroll: `${API}/node/${VERSION}/enroll`,
    } } } },
    api_key: KEY,
  }),
  (image, callback) => predict({ callback, image, config: RELAXED }),
).catch((e) => { window.__loadError = String(e && e.stack ? e.stack : e); });
