// Package privacy keeps Missive's promises to the people it holds data
// on: erasure (GDPR Art. 17) that removes the contact's record, sends,
// caps, pending sign-ups and address index entries, in a cost that grows
// with what the contact has, and keeps only suppression hashes and a
// pseudonymous ledger; export of everything held (Art. 15 and 20); the
// daily purge of contacts inactive past the retention term (Art. 5(1)(e),
// the CNIL's 3 years for prospects); and the record of processing
// (Art. 30) built from the configuration.
//
// What erasure keeps, and why:
//
//   - Suppression entries of the contact's addresses. They are keyed by a
//     keyed hash of the address and hold no address; they are the way to
//     honour an opt-out, a complaint or a bounce if the same address comes
//     back (a re-import, a sign-up). The CNIL asks that opposition lists be
//     kept at least 3 years, as hashes.
//
//   - The consent ledger, rewritten as pseudonymous: channel, topic, state,
//     source and time of each event stay, as the proof that consent was
//     given or withdrawn (Art. 7(1)); evidence values that could point back
//     to the person (IP hash, user agent, message and send ids) are
//     dropped, and only the ones that describe how consent was collected
//     (form, wording, page, confirmation channel) stay.
//
//   - Sends being handed to a provider at that very moment: their outcome
//     settles the run's counters; the records expire with the retention.
//
//     p, err := privacy.New(privacy.Config{Store: st, Runs: pipe, Caps: caps})
//     report, err := p.EraseContact(ctx, "c-42")
package privacy
