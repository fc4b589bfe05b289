"""studies: sweep specifications and runners for phase-diagram studies (built on dilution and analysis)."""
