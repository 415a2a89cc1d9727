"""The request pipeline every dialect route runs: the I/O around a pure dialect (auth, body, admission, dispatch, streaming)."""
