// Package consent is the one place where a contact's consents change
// after a read: a one-click unsubscribe, the preference page, SMS STOP and
// START, a complaint or hard bounce that withdraws marketing. Each change
// is one transaction of the store (store.ChangeConsents) that reads the
// current state and appends to the ledger only what changes, so that a
// repeated click or two messages at once record each event once.
//
//	m := consent.New(st, time.Now)
//	events, err := m.WithdrawAllMarketing(ctx, "c-42", time.Now())
package consent
