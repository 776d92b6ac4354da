package clients

// Get returns the client with the given id.
func (r *Registry) Get(id string) (*Config, bool) {
	c, ok := r.byID[id]
	if !ok {
		return nil, false
	}
	return c.cfg, true
}

// All returns every client's config.
func (r *Registry) All() []*Config {
	out := make([]*Config, 0, len(r.byID))
	for _, c := range r.byID {
		out = append(out, c.cfg)
	}
	return out
}
