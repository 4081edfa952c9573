// Package store keeps Missive's records in Redis, and is the only package
// of the dispatcher that speaks Redis: the key layout (documented in one
// comment on Store), the Lua scripts, the one WATCH-retry helper, the one
// walk of the contact list (ContactIDs), contacts sealed under the data
// keyring and the running processes' announcements of the key ids they
// hold (AnnounceKeys, KeyHolders), the strict bulk import
// (ImportContacts), the consent ledger sealed by chained MACs
// (VerifyLedger), the per-contact indexes that make erasure cost what a
// contact has, each run's index of its sends (RunSends, written where
// the decisions are recorded), the data of API sends sealed with their
// records (SetSendData), once-only claims of provider events, the
// scheduler's lease,
// and the campaign analytics: outcomes counted per run, topic and mailbox
// provider in the round trips that record them, never per person
// (RunAnalytics, TopicAnalytics).
//
// Keys that belong to one contact or one run carry a hash tag ({id}) so
// that multi-key scripts stay on one Redis Cluster slot.
//
//	st := store.NewStore(rdb, "missive", addressKey, time.Now, 90*24*time.Hour)
//	st.Keys = keyring
//	c, err := st.Contact(ctx, "c-42")
package store
