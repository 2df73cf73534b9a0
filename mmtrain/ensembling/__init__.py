"""Many runs into one model: finding and checking the members (members.py) and fitting how their
predictions combine on val (selection.py). The ensemble dir is written by ``mmtrain-ensemble``
(mmtrain/ensemble.py) and read back by inference/ensemble.py."""
