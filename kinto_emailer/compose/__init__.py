"""From a change to its messages: the listener, what each email says, digests, opt-outs."""
