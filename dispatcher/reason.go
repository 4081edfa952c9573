package dispatcher

// Reasons a send ends without leaving, besides the gate's (gate.Reason...),
// and why a send failed.
const (
	ReasonErased       = "erased"            // the contact was erased while the send waited
	ReasonRender       = "render"            // the template could not be rendered for this contact
	ReasonAmbiguous    = "ambiguous"         // the provider may have taken it; never sent again
	ReasonExhausted    = "retries_exhausted" // temporary failures until the last retry
	ReasonRejected     = "rejected"          // the provider refused it for good
	ReasonAnswered     = "answered"          // what it answered is gone (a sign-up confirmed or expired first)
	ReasonNoChannel    = "no_channel"        // no channel configured for the kind
	ReasonRunCancelled = "run_cancelled"
)
