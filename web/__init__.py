"""HTTP entrypoint: a Starlette app whose routes only translate."""
