package store

import (
	"strings"

	"github.com/missive-dev/missive/channels"
	"github.com/missive-dev/missive/dispatcher"
)

// The key layout. Every key starts with the prefix P; keys that belong to
// one contact or one run carry a hash tag ({id}) so that multi-key
// scripts and transactions stay on one Redis Cluster slot. Writes that
// span a record and a shared index (P:runs:active, P:contacts...) are
// steps that are each safe to repeat, never one transaction. Every key is built in this file
// or, for families written in one place, with Key next to that place.
//
// Contacts and consent:
//
//	P:c:{id}               contact (JSON sealed under the data keyring)
//	P:c:{id}:consent       hash "channel/topic" -> current consent (JSON)
//	P:c:{id}:prefs         hash "pause", "frequency/topic", "hours" -> current preference (JSON):
//	                       the pace the recipient chose, set with the ledger's events
//	P:c:{id}:ledger        list of consent events (JSON), append-only, each sealed by
//	                       a MAC chained to the one before (ledger.go)
//	P:c:{id}:addrs         set of the hashes of the contact's addresses (erasure)
//	P:c:{id}:sends         set of the contact's API and confirmation send ids (erasure, export)
//	P:contacts             sorted set of contact ids (score 0, walked by ContactIDs)
//	P:addr:<hash>          contact id of an address (keyed hash); a sign-up claims it (SETNX)
//	P:rotate:cursor        last contact id re-sealed by a RotateData in progress
//	P:tagjournal           sorted set of the tags an upsert added, sealed, until the
//	                       sequences heard of them (tagjournal.go)
//
// Sign-ups:
//
//	P:pending:<h>          pending sign-up (JSON), 48 h; h = sha256(confirmation token)
//	P:c:{id}:pending       set of the h of the contact's pending sign-ups (erasure), 48 h
//	P:pendingsms:<hash>    h of the newest pending SMS sign-up of a number, 48 h
//	P:pendingaddr:<hash>   set of the h of an address's pending sign-ups (erasure), 48 h
//	P:c:{s-...}            provisional record of an address with no contact until its
//	                       sign-up is confirmed, 48 h; in neither P:contacts nor P:addr
//	P:signupdone:<h>       the sign-up h was confirmed (a second confirmation says so), 48 h
//	P:c:{id}:signups       hash h -> confirmation time: a sign-up grants once, 48 h
//
// Suppression and feedback:
//
//	P:sup:<hash>           suppression entry (JSON), with a TTL when temporary
//	P:soft:<hash>          sorted set of an address's soft bounces by time (the policy's window)
//	P:prov:<provider id>   send id of an SMS provider's message id (Twilio status callbacks), send TTL
//	P:verp:<hash>          send id of a VERP token too long to carry it, send TTL
//	P:fb:<send>:<kind>     feedback of that kind applied to the send, once, send TTL
//	P:mailgun:token:<sha256>   claim of a Mailgun webhook token, 15 min
//	P:esp:<source>:event:<sha256>   claim of an email provider's event (id, kind, address), 24 h
//	P:twilio:sid:<sid>     claim of an inbound SMS: "pending" (2 min lease), then "done" (7 days)
//	P:topicstats:<topic>   hash of a topic's feedback counters (unsubscribes, confirmations...)
//	P:topican:{topic}:<yyyymmdd>   a topic's analytics counters of one UTC day, 400 days (analytics.go)
//
// Catalogue, campaigns and runs:
//
//	P:topics, P:templates, P:segments, P:campaigns   hashes id -> JSON
//	P:tplv:<id>            hash version -> template JSON
//	P:runs:<campaign>      sorted set of run ids by fire time
//	P:runs:active          set of runs not yet finished
//	P:run:{r}              run meta and counters (n:<outcome>, d:<decision>, f:<feedback>,
//	                       m:<unix minute>:<outcome> for the sends settled that minute),
//	                       paused_reason, indexed (CreateRun's steps are done);
//	                       planning: cursor, batches, plan_finished, batches_done,
//	                       planned_done
//	P:run:{r}:snapshot     what the run was started with (JSON), written once
//	P:run:{r}:an           the run's analytics counters, hourly and per domain (analytics.go)
//	P:run:{r}:inflight     sorted set send id -> deadline (ms)
//	P:run:{r}:bseen        set of batch numbers taken up at least once
//	P:run:{r}:bdone        set of batch numbers done
//	P:run:{r}:sends        list of the run's send ids in the order decided, appended with
//	                       the records, expires with the newest; an erased send's entry is
//	                       blanked, never removed, so positions hold (RunSends)
//	P:s:{r}:<hash>         send record (hash); field data: the send's data, sealed
//	P:idem:<sha256>        idempotency record of an API send
//	P:wording:<id>         exact text of a consent wording (JSON), id = SHA-256 of its language and text
//
// Console:
//
//	P:console:users        hash name -> console account (JSON, password as its hash)
//	P:console:session:<sha256>   a signed-in session (hash user, created, seen), by the
//	                       hash of its id; expires when idle
//	P:console:usersessions:<name>  set of the hashes of an account's sessions (sign-out)
//	P:console:fail:<hmac>        failed sign-ins of an account name or client address (keyed hash),
//	                       in a window from the first (lock-out)
//
// Operations:
//
//	P:audit                stream of the API's audited actions (capped)
//	P:scheduler:lease      the scheduler leader's lease (holder "id:token")
//	P:scheduler:epoch      the fencing token's counter
//	P:retention:last       when the last retention purge started (a claim)
//	P:retention:stats      outcome of the last retention purge
//	P:keyholders           set of the ids of processes announcing the data keys they hold
//	P:keyholder:<process>  a running process's announcement (KeyHolder JSON: role, key
//	                       ids, the sealing key's id; never a key), KeyHolderTTL, refreshed
//
// Sequences (sequence.go): P:{sequences}, P:{sequences}:v:<id>, P:seq:{id}:due,
// P:seq:{id}:stats, and each contact's enrolments P:c:{id}:enr.
//
// Outbound webhooks (webhook.go):
//
//	P:webhooks             hash endpoint id -> endpoint (JSON sealed, with its signing secret)
//	P:wh:{e}:ev:<event>    an event waiting for endpoint e (sealed), 7 days
//	P:wh:{e}:q:<contact>   the contact's event ids waiting for e, in order
//	P:wh:{e}:lock:<contact>  the lease of the worker delivering that queue
//	P:wh:{e}:log           e's last delivery attempts (capped)
//	P:wh:outbox            "endpoint event nonce" entries waiting to be handed to the queue
//	P:lock:webhook-outbox  the lease of the worker handing the outbox over
//
// Other packages own their keys under the same prefix: throttle
// (P:cap:{contact}:..., P:rate:<key>) and asynq (asynq:{P:<queue>}:...).

// Key joins parts under the prefix.
func (s *Store) Key(parts ...string) string { return s.p + ":" + strings.Join(parts, ":") }

// ContactKey names a contact's record; its hash tag groups its keys.
func (s *Store) ContactKey(id string) string { return s.p + ":c:{" + id + "}" }

// ConsentKey names a contact's current consents.
func (s *Store) ConsentKey(id string) string { return s.ContactKey(id) + ":consent" }

// prefsKey names a contact's current preferences (the pace they chose).
func (s *Store) prefsKey(id string) string { return s.ContactKey(id) + ":prefs" }

func (s *Store) ledgerKey(id string) string { return s.ContactKey(id) + ":ledger" }

// RunKey names a run's record; its hash tag groups its keys.
func (s *Store) RunKey(run string) string { return s.p + ":run:{" + run + "}" }

// inflightKey names a run's sends in flight, by deadline.
func (s *Store) inflightKey(run string) string { return s.RunKey(run) + ":inflight" }

// runSendsKey names the index of a run's sends.
func (s *Store) runSendsKey(run string) string { return s.RunKey(run) + ":sends" }

// snapshotKey names what a run was started with.
func (s *Store) snapshotKey(run string) string { return s.RunKey(run) + ":snapshot" }

// SendKey names a send's record, in its run's slot.
func (s *Store) SendKey(id string) string {
	run, h, _ := dispatcher.SplitSendID(id)
	return s.p + ":s:{" + run + "}:" + h
}

// PendingKey names a pending sign-up by the hash of its token.
func (s *Store) PendingKey(h string) string { return s.Key("pending", h) }

// signupsKey names the sign-ups a contact confirmed.
func (s *Store) signupsKey(contact string) string {
	return s.ContactKey(contact) + ":signups"
}

// pendingIndexKey names the set of a contact's pending sign-ups (hashes of
// their tokens), so that erasure finds them without scanning.
func (s *Store) pendingIndexKey(contact string) string {
	return s.ContactKey(contact) + ":pending"
}

// AddressesKey names the set of the hashes of a contact's addresses, so
// that erasure finds its address index entries even when the record no
// longer opens.
func (s *Store) AddressesKey(contact string) string {
	return s.ContactKey(contact) + ":addrs"
}

func (s *Store) auditKey() string { return s.Key("audit") }

// keyHoldersKey names the index of the processes announcing their keys.
func (s *Store) keyHoldersKey() string { return s.Key("keyholders") }

// keyHolderKey names a process's announcement of the keys it holds.
func (s *Store) keyHolderKey(process string) string { return s.Key("keyholder", process) }

// RotateCursorKey names where a key rotation in progress stands.
func (s *Store) RotateCursorKey() string { return s.Key("rotate", "cursor") }

// providerKey maps a provider's message id to the send id.
func (s *Store) providerKey(provider string) string { return s.Key("prov", provider) }

// ContactSendsKey is the index of a contact's sends.
func (s *Store) ContactSendsKey(contact string) string { return s.ContactKey(contact) + ":sends" }

// idemKey names the idempotency record of an API request key, by hash: the
// key a client chose is never stored.
func (s *Store) idemKey(key string) string {
	return s.Key("idem", sha256Hex(key))
}

func (s *Store) batchesDoneKey(run string) string { return s.RunKey(run) + ":bdone" }

func (s *Store) batchesSeenKey(run string) string { return s.RunKey(run) + ":bseen" }

func (s *Store) pendingSMSKey(phone string) string {
	return s.Key("pendingsms", s.AddressHash(channels.SMS, phone))
}

func (s *Store) signupDoneKey(h string) string { return s.Key("signupdone", h) }
