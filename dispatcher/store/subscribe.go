package store

func (s *Store) PendingKey(h string) string { return s.Key("pending", h) }

func (s *Store) SignupsKey(contact string) string {
	return s.ContactKey(contact) + ":signups"
}
