package pipeline

import (
	"context"

	"github.com/hibiken/asynq"
)

// TypeSequence takes the due steps of a batch of a sequence's enrolments:
// its payload names the sequence and the contacts, nothing else.
const TypeSequence = "missive:sequence"

type sequencePayload struct {
	Sequence string   `json:"sequence"`
	Contacts []string `json:"contacts"`
}

// Sequences is what the worker needs of the sequences: taking the due
// steps of contacts' enrolments (sequence.Engine).
type Sequences interface {
	Fire(ctx context.Context, sequence string, contacts []string) error
}

// SetSequences sets the sequences whose steps the worker takes. Without
// it, sequence tasks are dropped.
func (d *Pipeline) SetSequences(s Sequences) { d.sequences = s }

// EnqueueSequence queues the due steps of the contacts' enrolments in
// sequence, on the batch queue: they go through the gate.
func (d *Pipeline) EnqueueSequence(ctx context.Context, sequence string, contacts []string) error {
	return d.enqueue(ctx, TypeSequence, sequencePayload{Sequence: sequence, Contacts: contacts}, asynq.Queue(d.Queue("batch")))
}

func (d *Pipeline) handleSequence(ctx context.Context, t *asynq.Task) error {
	p, err := decodePayload[sequencePayload](t, "sequence")
	if err != nil {
		return err
	}
	if d.sequences == nil {
		return nil
	}
	return d.sequences.Fire(ctx, p.Sequence, p.Contacts)
}
