package api

import (
	"net/http"

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
	return http.StatusCreated, c, nil
}

func (a *handler) getCampaign(w http.ResponseWriter, r *http.Request) (int, any, error) {
	c, err := a.d.Store.Campaign(r.Context(), r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, c, nil
}

func (a *handler) listCampaigns(w http.ResponseWriter, r *http.Request) (int, any, error) {
	cs, err := a.d.Store.Campaigns(r.Context())
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string][]dispatcher.Campaign{"campaigns": cs}, nil
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
	return http.StatusOK, c, nil
}

func (a *handler) startCampaign(w http.ResponseWriter, r *http.Request) (int, any, error) {
	run, err := a.d.Pipeline.StartRun(r.Context(), r.PathValue("id"), a.d.Config.Now())
	if err != nil {
		return 0, nil, err
	}
	return http.StatusAccepted, map[string]string{"run": run}, nil
}

func (a *handler) campaignAction(action string) apiFunc {
	return func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		c, err := a.d.Pipeline.SetCampaignState(r.Context(), r.PathValue("id"), action)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, c, nil
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
