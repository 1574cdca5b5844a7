"""os-ken applications of the lab: thin OpenFlow adapters over pure decision logic."""
