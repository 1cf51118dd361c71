#!/bin/sh
# The linker cargo calls for this workspace (.cargo/config.toml): the C compiler driver,
# as rustc's default, but with mold when it is installed (`make watch` and `make infra`
# install it): it links the 45 MB debug gateway in a fraction of rust-lld's time, which
# is most of a hot reload. Without mold it links exactly as rustc would.
# Named *-gcc so that rustc passes it the C driver's flags, as to cc.
# The last -fuse-ld wins, so ours goes after the arguments rustc passes (-fuse-ld=lld).
if command -v mold >/dev/null 2>&1; then
  exec cc "$@" -fuse-ld=mold
fi
exec cc "$@"
