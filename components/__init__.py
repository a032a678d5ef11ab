"""One Pulumi ComponentResource per concern of the HA control plane."""
