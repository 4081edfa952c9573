//go:build tools

package tools
import (
 _ "github.com/hibiken/asynq"
 _ "github.com/redis/go-redis/v9"
 _ "github.com/wneessen/go-mail"
 _ "github.com/twilio/twilio-go"
 _ "github.com/robfig/cron/v3"
 _ "github.com/alicebob/miniredis/v2"
 _ "github.com/emersion/go-smtp"
 _ "github.com/nyaruka/phonenumbers"
 _ "github.com/google/go-cmp/cmp"
 _ "go.uber.org/goleak"
 _ "github.com/schollz/progressbar/v3"
 _ "github.com/go-redis/redis_rate/v10"
)
