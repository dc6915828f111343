// demo.js -- shows a newcomer what the snippet does: the consent cookie the
// collector set and every beacon the page sends. Loaded before fs.js; not
// part of the snippet. (It wraps navigator.sendBeacon only to print it.)
(function () {
  var log = [];
  function show() {
    var el = document.getElementById('demo-log');
    if (!el) return;
    var m = document.cookie.match(/(?:^|; )fs_consent=\d+\.([01])/);
    el.textContent = 'Consent cookie: ' + (m ? (m[1] === '1' ? 'accepted' : 'declined') : 'none') +
      '\nBeacons sent from this page:' + (log.length ? '\n' + log.join('\n') : ' none');
  }
  var beacon = navigator.sendBeacon && navigator.sendBeacon.bind(navigator);
  if (beacon) {
    navigator.sendBeacon = function (url, body) {
      try {
        var e = JSON.parse(body);
        log.push('  ' + e.name + '  ' + new URL(e.url).pathname + (e.props ? '  ' + JSON.stringify(e.props) : ''));
      } catch (err) { /* not ours */ }
      setTimeout(show);
      return beacon(url, body);
    };
  }
  document.addEventListener('DOMContentLoaded', show);
  document.addEventListener('click', function () { setTimeout(show, 300); });
})();
