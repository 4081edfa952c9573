package api

import (
	"net/http"
	"time"

	"github.com/missive-dev/missive/dispatcher"
	"github.com/missive-dev/missive/dispatcher/pipeline"
)

func (a *handler) createCampaign(w http.ResponseWriter, r *http.Request) (int, any, error) {
	var c dispatcher.Campaign
	if err := decodeJSON(w, r, &c); err != nil {
		return 0, nil, err
	}
	if err := a.d.Pipeline.CreateCampaign(r.Context(), &c); err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, a.campaignView(&c), nil
}

// campaignView is a campaign as the API shows it: with the next times its
// schedule fires.
type campaignView struct {
	*dispatcher.Campaign
	NextFires []time.Time `json:"next_fires,omitempty"`
}

// nextFires is how many fire times a campaign shows.
const nextFires = 5

func (a *handler) campaignView(c *dispatcher.Campaign) campaignView {
	return campaignView{Campaign: c, NextFires: c.NextFires(a.d.Config.Now(), nextFires)}
}

func (a *handler) getCampaign(w http.ResponseWriter, r *http.Request) (int, any, error) {
	c, err := a.d.Store.Campaign(r.Context(), r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, a.campaignView(c), nil
}

func (a *handler) scheduleCampaign(w http.ResponseWriter, r *http.Request) (int, any, error) {
	var s dispatcher.Schedule
	if err := decodeJSON(w, r, &s); err != nil {
		return 0, nil, err
	}
	c, err := a.d.Pipeline.ScheduleCampaign(r.Context(), r.PathValue("id"), s)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, a.campaignView(c), nil
}

// startRequest is the optional body of a start.
type startRequest struct {
	// NewRun starts a run although one is under way or the campaign
	// completed.
	NewRun bool `json:"new_run"`
}

// startCampaign starts a run now. An Idempotency-Key makes a retried
// start return the run the first made (200) instead of a new one (202); a
// campaign with a run under way refuses a second start (409) unless the
// body asks for a new run.
func (a *handler) startCampaign(w http.ResponseWriter, r *http.Request) (int, any, error) {
	var in startRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(w, r, &in); err != nil {
			return 0, nil, err
		}
	}
	key := r.Header.Get("Idempotency-Key")
	if key != "" && !validIdemKey(key) {
		return 0, nil, dispatcher.Invalid("Idempotency-Key", "must be 1-%d printable ASCII characters", maxIdemKeyLen)
	}
	started, err := a.d.Pipeline.Start(r.Context(), r.PathValue("id"), pipeline.StartOptions{Key: key, NewRun: in.NewRun})
	if err != nil {
		return 0, nil, err
	}
	if !started.Created {
		return http.StatusOK, started, nil
	}
	return http.StatusAccepted, started, nil
}

func (a *handler) campaignAction(action string) apiFunc {
	return func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		c, err := a.d.Pipeline.SetCampaignState(r.Context(), r.PathValue("id"), action)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, a.campaignView(c), nil
	}
}

func (a *handler) runAction(action string) apiFunc {
	return func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		run, err := a.d.Pipeline.SetRunState(r.Context(), r.PathValue("id"), action)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, run, nil
	}
}

func (a *handler) campaignStats(w http.ResponseWriter, r *http.Request) (int, any, error) {
	runs, err := a.d.Pipeline.CampaignStats(r.Context(), r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"campaign": r.PathValue("id"), "runs": runs}, nil
}

func (a *handler) getRun(w http.ResponseWriter, r *http.Request) (int, any, error) {
	ctx := r.Context()
	run, err := a.d.Store.Run(ctx, r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	dec, err := a.d.Store.Decisions(ctx, run.ID)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, pipeline.RunStats{Run: run, Decisions: dec}, nil
}
