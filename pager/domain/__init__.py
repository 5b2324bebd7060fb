"""The functional core: pure data and rules, no I/O, time always passed in.

The shell (`pager.engine`) asks the core what a request would change, commits that
`Change` through the store, and only then applies it to the in-memory state.
"""
