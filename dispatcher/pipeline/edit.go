package pipeline

import (
	"context"

	"github.com/missive-dev/missive/dispatcher"
)

// EditCampaign changes what a draft or scheduled campaign sends and to
// whom: name, topic, segment, channels, fallback, templates, rate limit.
// Its state, schedule and runs stay. Returns an error with code invalid
// naming the field at fault, not_found, or conflict when the campaign has
// started.
func (d *Pipeline) EditCampaign(ctx context.Context, c *dispatcher.Campaign) (*dispatcher.Campaign, error) {
	if err := d.checkCampaign(ctx, c); err != nil {
		return nil, err
	}
	return d.Store.UpdateCampaign(ctx, c.ID, func(cur *dispatcher.Campaign) (bool, error) {
		if cur.State != dispatcher.Draft && cur.State != dispatcher.Scheduled {
			return false, dispatcher.Conflict("campaign is %s: only a draft or scheduled campaign can be edited", cur.State)
		}
		cur.Name, cur.Topic, cur.Segment, cur.Channels = c.Name, c.Topic, c.Segment, c.Channels
		cur.Fallback, cur.Templates, cur.RateLimit = c.Fallback, c.Templates, c.RateLimit
		return true, nil
	})
}
