"""The chaos run: real ``idemsync serve`` processes, a projection runner and
PostgreSQL killed and restarted under a partner's traffic (issue 7, item 1
and 2). ``scenario.run`` is the whole run; ``test_chaos`` its CI size and
``python -m tests.chaos`` (``make chaos``) its long form."""
