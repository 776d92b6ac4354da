package revocation

// Len is the number of revocations held in memory.
func (s *Store) Len() int { return s.mem.Len() }
