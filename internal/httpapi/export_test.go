package httpapi

// ChecksRunning is the number of /v1/check calls counting now.
func ChecksRunning(s *Server) int64 { return s.checks.running.Load() }
