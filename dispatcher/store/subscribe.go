package store

func (s *Store) PendingKey(h string) string { return s.Key("pending", h) }

func (s *Store) SignupsKey(contact string) string {
	return s.ContactKey(contact) + ":signups"
}

// PendingIndexKey names the set of a contact's pending sign-ups (hashes of
// their tokens), so that erasure finds them without scanning.
func (s *Store) PendingIndexKey(contact string) string {
	return s.ContactKey(contact) + ":pending"
}

// AddressesKey names the set of the hashes of a contact's addresses, so
// that erasure finds its address index entries even when the record no
// longer opens.
func (s *Store) AddressesKey(contact string) string {
	return s.ContactKey(contact) + ":addrs"
}
