// banner.js -- the consent dialog: builds it in a shadow root, moves focus
// into it, hands the visitor's choice back to fs.js.
//
// A non-modal dialog (role=dialog, labelled by its heading, described by its
// text): the page stays usable behind it, so there is no focus trap, but
// focus moves into it when it opens and goes back where it was when it
// closes; Escape closes it. Texts are inserted as HTML: they come from the
// site, never from visitors, and a site may want markup in them.

/* global __CSS__ */
export let host; // the element in the page holding the shadow root, while open
let opener;    // what had focus before the dialog opened

// data: the script tag's data-* getter (policy, position, color); lang, t:
// language and texts; current: the choice in force (true, false, or
// undefined), ticked (aria-pressed) when the dialog is reopened;
// choose(analytics) receives the visitor's answer.
export function bannerOpen(data, lang, t, current, choose) {
  bannerClose();
  const button = (v, label) =>
    `<button value=${v}${current == null ? '' : ' aria-pressed=' + (current == v)}>${label}</button>`;
  const policy = data('policy');
  opener = document.activeElement;
  // An undefined custom element: no style of the page matches it by accident.
  host = document.createElement('fairstat-consent');
  host.style.setProperty('--fs-accent', data('color'));
  host.attachShadow({ mode: 'open' }).innerHTML =
    `<style>${__CSS__}</style>` +
    `<div class="d ${data('position')}" role=dialog aria-labelledby=t aria-describedby=x tabindex=-1 lang=${lang}>` +
    `<h2 id=t>${t.title}</h2><p id=x>${t.text}` +
    (policy ? ` <a href="${policy}">${t.policy}</a>` : '') +
    `</p>${button(0, t.reject)}${button(1, t.accept)}</div>`;
  const dialog = host.shadowRoot.lastChild;
  dialog.onclick = (e) => {
    const v = e.target.value;
    if (v) {
      bannerClose();
      choose(v > 0);
    }
  };
  // (A handler returning false would cancel the key, Tab included.)
  dialog.onkeydown = (e) => e.key != 'Escape' || bannerClose();
  // In <body>, so that it inherits the page's font.
  document.body.append(host);
  dialog.focus();
}

// Removes the dialog and puts focus back on what the visitor was on.
export function bannerClose() {
  if (host) {
    host.remove();
    host = 0;
    opener?.focus?.();
  }
}
