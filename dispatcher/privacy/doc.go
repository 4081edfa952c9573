// Package privacy keeps Missive's promises to the people it holds data
// on: erasure (GDPR Art. 17) that removes the contact's record, sends,
// caps, pending sign-ups and address index entries, in a cost that grows
// with what the contact has, and keeps only suppression hashes and a
// pseudonymous ledger; export of everything held (Art. 15 and 20); the
// daily purge of contacts inactive past the retention term (Art. 5(1)(e),
// the CNIL's 3 years for prospects); and the record of processing
// (Art. 30) built from the configuration.
//
//	p, err := privacy.New(privacy.Config{Store: st, Runs: pipe, Caps: caps})
//	report, err := p.EraseContact(ctx, "c-42")
package privacy
