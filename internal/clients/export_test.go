package clients

// All returns every client's config.
func (r *Registry) All() []*Config {
	out := make([]*Config, 0, len(r.byID))
	for _, c := range r.byID {
		out = append(out, c.cfg)
	}
	return out
}
