"""Edge-vs-cloud routers (Ianvs: hard example mining). ``__call__(x) -> bool``,
True meaning hard, i.e. send to the cloud."""
