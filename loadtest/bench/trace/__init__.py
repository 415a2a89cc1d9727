"""``fleetgate bench trace``: replay a Mooncake-format request trace through real routers to a sim cluster.

One module per job: ``mooncake`` reads the trace, ``prompts`` synthesises prompt text
whose shared block ids are shared text, ``bodies`` writes each dialect's request,
``replay`` sends them open-loop at the trace's times, ``sampling`` watches the
replicas' load and the routers' metrics, ``sim_model`` writes the replay's sim
config, ``cluster`` starts the processes, ``summary`` / ``verdicts`` / ``report`` /
``plots`` turn the records into numbers, and ``run`` ties one invocation together.
"""
