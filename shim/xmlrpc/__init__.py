"""The wire and dispatch: XML-RPC bytes in and out, faults, the method-table types, dispatch, rate limits."""
