// tcf-strings.mjs -- writes tests/data/tcf/strings.json: TC strings made by
// the official IAB library (@iabtechlabtcf/core) with what each must decode
// to, so that the C unit test (tests/unit/test_tcf.c) and the integration
// tests check our decoder against the reference encoder without node.
//
//   node tests/lib/tcf-strings.mjs > tests/data/tcf/strings.json
//
// The library will not encode vendors without a Global Vendor List; a small
// one is built here (no network): vendors 1..MAX_VENDOR, each declaring
// consent purposes 1-10 and legitimate interest purposes 2, 7-10. The
// encoder picks the shorter vendor encoding (bitfield or ranges); the cases
// below force each: few scattered vendors -> bitfield, long runs -> ranges.
import { GVL, TCModel, TCString } from '@iabtechlabtcf/core';

const MAX_VENDOR = 800;
const CREATED = new Date(Date.UTC(2024, 4, 1, 12, 0, 0));
const UPDATED = new Date(Date.UTC(2024, 4, 2, 8, 30, 0));

function minimalGvl() {
    const named = (n) => Object.fromEntries(
        Array.from({ length: n }, (_, i) => [i + 1, { id: i + 1, name: `p${i + 1}`, description: '', illustrations: [] }]));
    const vendors = {};
    for (let id = 1; id <= MAX_VENDOR; id++)
        vendors[id] = {
            id, name: `vendor ${id}`, purposes: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], legIntPurposes: [2, 7],
            flexiblePurposes: [2, 7, 8, 9, 10], specialPurposes: [1], features: [], specialFeatures: [],
            cookieMaxAgeSeconds: 0, usesCookies: true, cookieRefresh: false, usesNonCookieAccess: false,
        };
    return {
        gvlSpecificationVersion: 3, vendorListVersion: 142, tcfPolicyVersion: 5,
        lastUpdated: '2024-05-01T00:00:00Z', purposes: named(11), specialPurposes: named(3),
        features: named(3), specialFeatures: named(2), stacks: {}, dataCategories: {}, vendors,
    };
}

const range = (a, b) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

// name, purposes consented, purposes LI, vendors consented, vendors LI
const CASES = [
    { name: 'all_granted_bitfield', purposes: range(1, 10), vendors: [1, 3, 5, 8, 13, 21, 34] },
    { name: 'purposes_1_8_vendor_range', purposes: [1, 8], vendors: range(1, 300) },
    { name: 'purpose_8_withheld', purposes: [1, 2, 3, 4, 5, 6, 7, 9, 10], vendors: range(1, 300) },
    { name: 'purpose_1_withheld', purposes: [8, 9, 10], vendors: [1, 2, 3, 4, 5] },
    { name: 'nothing_granted', purposes: [], vendors: [] },
    { name: 'ranges_with_gaps', purposes: [1, 8], vendors: [...range(2, 120), 200, ...range(400, 790)] },
    { name: 'scattered_bitfield', purposes: [1, 7, 8], vendors: range(1, 200).filter((v) => v % 3 === 0), legint: [2, 7] },
    { name: 'single_vendor_755', purposes: [1, 8], vendors: [755] },
    { name: 'with_li_and_special', purposes: [1, 8], vendors: range(10, 60), legint: [2, 7, 9, 10],
      vendorsLi: [11, 12], specialFeatures: [1], purposeOneTreatment: true, country: 'FR' },
];

const gvl = new GVL(minimalGvl());
await gvl.readyPromise;

function encode(c) {
    const m = new TCModel(gvl);
    m.cmpId = 31;
    m.cmpVersion = 7;
    m.consentScreen = 2;
    m.publisherCountryCode = c.country ?? 'DE';
    m.isServiceSpecific = true;
    m.purposeOneTreatment = !!c.purposeOneTreatment;
    m.purposeConsents.set(c.purposes);
    m.purposeLegitimateInterests.set(c.legint ?? []);
    m.vendorConsents.set(c.vendors);
    m.vendorLegitimateInterests.set(c.vendorsLi ?? []);
    m.specialFeatureOptins.set(c.specialFeatures ?? []);
    m.created = CREATED;
    m.lastUpdated = UPDATED;
    return TCString.encode(m);
}

// What the reference decoder reads back, in our decoder's terms.
function expected(tc) {
    const m = TCString.decode(tc);
    const ids = (v) => { const out = []; v.forEach((on, id) => { if (on) out.push(id); }); return out; };
    const core = tc.split('.')[0];
    const bits = [...core].map((ch) =>
        'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'.indexOf(ch).toString(2).padStart(6, '0')).join('');
    const vcStart = 6 + 36 + 36 + 12 + 12 + 6 + 12 + 12 + 6 + 1 + 1 + 12 + 24 + 24 + 1 + 12;
    return {
        version: m.version, created_ds: Math.round(m.created.getTime() / 100),
        updated_ds: Math.round(m.lastUpdated.getTime() / 100), cmp_id: m.cmpId,
        cmp_version: m.cmpVersion, consent_screen: m.consentScreen, consent_language: m.consentLanguage,
        vendor_list_version: m.vendorListVersion, policy_version: m.policyVersion,
        service_specific: m.isServiceSpecific, non_standard_texts: m.useNonStandardTexts,
        special_features: ids(m.specialFeatureOptins), purposes: ids(m.purposeConsents),
        purposes_li: ids(m.purposeLegitimateInterests), purpose_one_treatment: m.purposeOneTreatment,
        publisher_cc: m.publisherCountryCode, max_vendor: m.vendorConsents.maxId,
        vendor_encoding: bits[vcStart + 16] === '1' ? 'range' : 'bitfield',
        vendors: ids(m.vendorConsents), vendors_li: ids(m.vendorLegitimateInterests),
    };
}

const out = [];
for (const c of CASES) {
    const tc = encode(c);
    out.push({ name: c.name, tc, expect: expected(tc) });
}
// Other segments after '.' are accepted and ignored: add a publisher TC segment.
{
    const m = new TCModel(gvl);
    m.cmpId = 31; m.cmpVersion = 7; m.publisherCountryCode = 'DE';
    m.purposeConsents.set([1, 8]); m.vendorConsents.set([1, 2]); m.publisherConsents.set([1]);
    m.created = CREATED; m.lastUpdated = UPDATED;
    const tc = TCString.encode(m, { segments: ['core', 'publisherTC'] });
    out.push({ name: 'with_publisher_segment', tc, expect: expected(tc) });
}
const encodings = new Set(out.map((o) => o.expect.vendor_encoding));
if (!encodings.has('range') || !encodings.has('bitfield')) throw new Error('both vendor encodings must appear');
process.stdout.write(JSON.stringify({ generator: 'tests/lib/tcf-strings.mjs', library: '@iabtechlabtcf/core', cases: out }, null, 1) + '\n');
