"""A lab across several servers: the server harness (servers emulated on this machine) and
the checks a server must pass before a lab is placed on it (`testbed cluster ...`)."""
