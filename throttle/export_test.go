package throttle

import "github.com/redis/go-redis/v9"

// ForcePerRequest makes ReserveMany take the Redis Cluster path; it returns
// a function that undoes it.
func ForcePerRequest() (restore func()) {
	old := perRequest
	perRequest = func(redis.UniversalClient) bool { return true }
	return func() { perRequest = old }
}
