package email

// RoundTrips is how many times s's connections have waited for the relay:
// reads that followed a write.
func RoundTrips(s *Sender) int64 { return s.roundTrips.Load() }
