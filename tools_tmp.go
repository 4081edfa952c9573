//go:build tools

package tools

import (
	_ "github.com/chromedp/chromedp"
	_ "github.com/emersion/go-msgauth/dkim"
)
