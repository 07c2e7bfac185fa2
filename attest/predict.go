package attest

import (
	"crypto"

	"github.com/mcinit/mcinit/measure"
)

// Prediction is what a boot will measure: the events, the log and the
// final PCR value per bank.
type Prediction struct {
	PCR    int
	Banks  []crypto.Hash
	Events []measure.Event
	Values map[crypto.Hash][]byte
	Log    []byte
}

// Predict replays a boot's events (boot.Facts.Events) through a log-only
// measure.Recorder, the same log writer /init uses.
func Predict(events []measure.Event, pcr int, banks []crypto.Hash) (*Prediction, error) {
	r, err := measure.NewLogRecorder(pcr, banks...)
	if err != nil {
		return nil, err
	}
	for _, ev := range events {
		if err := r.Record(ev); err != nil {
			return nil, err
		}
	}
	return &Prediction{
		PCR:    pcr,
		Banks:  r.Banks(),
		Events: r.Events(),
		Values: measure.Expected(r.Banks(), r.Events()),
		Log:    r.Log(),
	}, nil
}
