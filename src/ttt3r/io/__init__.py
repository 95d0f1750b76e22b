"""Reading frames and writing files: nothing here knows about the network."""
