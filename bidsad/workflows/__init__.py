"""nipype workflows of the participant level."""
