// fs.js -- the Fairstat snippet: asks for consent, records the choice with
// the collector, and sends page-view beacons only while analytics is allowed.
//
// Embedded as <script defer src="https://stats.example.com/fs.js"
// data-domain="example.com"></script>; options are data-* attributes on that
// tag (docs/snippet.md). It stores nothing in the browser itself: the choice
// lives in the collector's signed cookie (the site's own, readable so that the
// script knows a choice exists: "1.<a>.…", a = 1 accepted, 0 declined) and
// beacons carry no identifier. The collector enforces consent, GPC and DNT
// again; the checks here are defence in depth and save traffic.
//
// Every byte ships to every visitor and the build fails above 2,048 bytes
// gzipped, hence the terse style; esbuild shortens the names.
//
// The same source builds fs-cmp.js (build.mjs, __CMP__ true) for sites whose
// consent manager decides: no banner, no texts, no consent cookie, always
// external mode, and the beacons go through cmp.js. With __CMP__ false every
// `__CMP__` below folds away and fs.js is built as if it were not there.
// esbuild folds the literal only, not a const made from it: hence the
// `__CMP__ ||` spelled out beside `external` where a branch must go.

import { TEXTS } from './texts.js';
import { bannerOpen, host as bannerShown } from './banner.js';
import { cmpStart, cmpSend } from './cmp.js';

/* global __CMP__ */

const FILES = 'pdf|zip|csv|xlsx?|docx?|pptx?';

function start(script, preset) {
  const w = window;
  const d = document;
  const nav = navigator;
  const loc = location;
  const data = (name) => script.getAttribute('data-' + name);

  // ------------------------------------------------------------- options

  const api = data('api') || new URL(script.src).origin;
  const domain = data('domain') || loc.hostname;
  const external = __CMP__ || data('consent') == 'external';
  const filesAttr = data('track-files');
  const files = filesAttr != null && RegExp('\\.(' + (filesAttr || FILES) + ')$', 'i');
  const outbound = data('track-outbound') != null;
  // The browser says no (Global Privacy Control, Do Not Track): never send, never ask.
  const refused = nav.globalPrivacyControl || nav.doNotTrack == 1;
  let lang = __CMP__ || (data('lang') || d.documentElement.lang).slice(0, 2);
  const t = __CMP__ || TEXTS[lang] || TEXTS[lang = 'en'];

  // --------------------------------------------------------------- state

  let choice;          // true accepted, false declined, undefined not known
  let allowed;         // may beacons go out now
  let last;            // path of the last pageview, against duplicates
  // Once the settings reopened the banner, choices say so (?method=settings).
  let consentUrl = '/consent?domain=' + domain;

  // keepalive: a choice or beacon made just before leaving the page arrives.
  const request = (method, path, body) =>
    fetch(api + path, { method, body, credentials: 'include', keepalive: true });

  const setChoice = (ok) => {
    choice = ok;
    allowed = ok && !refused;
    last = 0;
    pageview();
  };

  const show = __CMP__ ? 0 : () => bannerOpen(data, lang, t, choice, choose);
  // In external mode the site's consent manager owns the settings.
  const settings = () => __CMP__ || external || show(consentUrl += '&method=settings');

  // Accepting starts beacons once the collector has set its cookie; declining
  // stops them at once. Withdrawing an earlier accept first erases what the
  // collector still holds, then records the refusal so nobody asks again.
  function choose(ok) {
    const record = () => request('POST', consentUrl, JSON.stringify({ domain, analytics: ok }))
      .then((r) => r.ok && setChoice(ok));
    if (ok !== choice) {
      allowed = 0;
      choice ? request('DELETE', consentUrl).then(record) : record();
    }
  }

  // ------------------------------------------------------------- beacons

  // Like Plausible's script, every event carries document.referrer; the
  // collector takes a visit's source from its first event.
  function send(name, props) {
    const path = '/api/event';
    // fs-cmp.js: cmp.js adds the consent manager's signals and holds the
    // beacon until the manager has answered.
    if (__CMP__)
      return allowed && cmpSend({ domain, name, url: loc.href, referrer: d.referrer, props },
        (body) => nav.sendBeacon(api + path, body) || request('POST', path, body));
    const body = JSON.stringify({ domain, name, url: loc.href, referrer: d.referrer, props });
    allowed && (nav.sendBeacon(api + path, body) || request('POST', path, body));
  }

  function pageview() {
    if (allowed && loc.pathname != last) {
      last = loc.pathname;
      send('pageview');
    }
  }

  // Single-page apps: every history change may be a new page.
  for (const k of ['pushState', 'replaceState']) {
    const orig = history[k];
    history[k] = function () {
      orig.apply(this, arguments);
      pageview();
    };
  }
  addEventListener('popstate', pageview);

  // Clicks: "privacy settings" links, and the opt-in link tracking.
  d.addEventListener('click', (e) => {
    const el = e.target;
    const a = el.closest('a[href]');
    if (el.closest('[data-fairstat-settings]')) {
      e.preventDefault();
      settings();
    } else if (a && /^http/.test(a.protocol)) {
      if (files && files.test(a.pathname)) send('File Download', { url: a.href });
      else if (outbound && a.host != loc.host) send('Outbound Link: Click', { url: a.href });
    }
  });

  // ---------------------------------------------------------------- API

  w.fairstat = {
    track: send,
    openSettings: settings,
    // Overrides any of the texts: {title, text, policy, accept, reject}.
    texts: (o) => {
      if (!__CMP__) {
        Object.assign(t, o);
        bannerShown && show();
      }
    },
  };
  __CMP__ && cmpStart();
  w.fairstat.texts(preset.texts);

  // ------------------------------------------------------------- startup

  if (__CMP__ || external) {
    // The site's consent manager decides; the collector reads its cookie.
    setChoice(true);
  } else {
    // The site's own cookie: data-cookie, else the name the collector
    // derives from the site (fs_consent_example.com), or fs_consent, that of
    // a one-site collector. A collector on another host sets it for
    // the site's domain ([site] cookie_domain) so that the page can read it.
    const m = d.cookie.match((data('cookie') || 'fs_consent(_' + domain + ')?') + '=1.(.)');
    if (m) setChoice(m.pop() > 0);
    else if (!refused) show();
  }
}

// Embedded twice (or by a tag manager and by hand): only the first one runs.
// A window.fairstat set before the script loads may carry {texts: {...}}.
const preset = window.fairstat || {};
preset.track || start(document.currentScript, preset);
