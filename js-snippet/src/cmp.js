// cmp.js -- what fs-cmp.js (the external-CMP build of fs.js, __CMP__ true)
// adds to each beacon: the site's consent manager's TC string, read from the
// IAB TCF API (__tcfapi), and Google Consent Mode's analytics_storage, read
// from window.dataLayer. The collector decides (docs/protocol.md, Consent
// sources); these only hand it what the page knows and the cookies do not.
//
// With __tcfapi on the page, beacons wait until the CMP has answered
// (tcloaded, or useractioncomplete after its dialog): held here, then sent in
// order. Without it nothing waits and the collector reads the cookies.

let tc;            // the CMP's TC string (undefined: none, the cookie decides)
let held = [];     // beacons waiting for the CMP; null once it has answered

export function cmpStart() {
  const tcfapi = window.__tcfapi;
  const flush = () => {
    held?.map((go) => go());
    held = null;
  };
  if (typeof tcfapi != 'function') return flush();
  // Called again on every later change of the visitor's choice: the next
  // beacons carry the new string. gdprApplies false: no string, as the CMP
  // means none applies; the collector then finds no consent.
  tcfapi('addEventListener', 2, (data, ok) => {
    if (ok && /^(tcloaded|useractioncomplete)$/.test(data.eventStatus)) {
      tc = data.gdprApplies !== false && data.tcString || undefined;
      flush();
    }
  });
}

// Google Consent Mode: gtag('consent', 'default' | 'update', {...}) pushes its
// arguments to dataLayer; the last analytics_storage given wins. Region-scoped
// defaults count everywhere: the collector only ever restricts on it.
function storage() {
  let v;
  for (const e of window.dataLayer || [])
    if (e && e[0] == 'consent' && /^(default|update)$/.test(e[1]) && e[2]?.analytics_storage)
      v = e[2].analytics_storage;
  return /^(denied|granted)$/.test(v) ? v : undefined;
}

// Sends (or holds) one beacon: the event object o, plus the signals as they
// are when it goes out. A TC string above the collector's 4,096-byte limit
// would lose the beacon (400): it is left out and the cookie decides.
export function cmpSend(o, post) {
  const go = () => post(JSON.stringify({ ...o, tc: tc?.length < 4097 ? tc : undefined, analytics_storage: storage() }));
  held ? held.push(go) : go();
}
