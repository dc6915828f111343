// texts.js -- the banner's default wording in English, German and French.
//
// Short on purpose: every byte ships to every visitor and the snippet must
// stay under 2 kB gzipped. Sites override any key with fairstat.texts({...})
// or a window.fairstat = {texts: {...}} set before the script.
export const TEXTS = {
  en: {
    title: 'Count your visit?',
    text: 'Only with your consent, for anonymous statistics.',
    policy: 'Privacy policy',
    accept: 'Accept',
    reject: 'Reject',
  },
  de: {
    title: 'Besuch zählen?',
    text: 'Nur mit Ihrer Einwilligung, für anonyme Statistiken.',
    policy: 'Datenschutz',
    accept: 'Akzeptieren',
    reject: 'Ablehnen',
  },
  fr: {
    title: 'Compter votre visite\u00a0?',
    text: 'Seulement avec votre accord, pour des statistiques anonymes.',
    policy: 'Confidentialité',
    accept: 'Accepter',
    reject: 'Refuser',
  },
};
