# 3. Descriptors: crop the CBED centres and cut line-profile stacks (classification) and the
# unit-cell average (regression) of every cell, one file per block (the step cells of one
# thickness; its intermixed cells); then gather them into split datasets. A block, not a cell,
# per job: one job per cell would double the jobs Snakemake plans at paper scale, and 10 blocks
# leave the cluster submissions to the simulations. A changed cell reruns its simulation and its
# block's reduction (a fraction of a second a cell, the block's cells in parallel). The reduced
# files are kept in every simulation.store mode (never temp()): a dataset's `x` reads its examples
# from them (an HDF5 virtual dataset naming them relative to results/datasets/, no copy).


rule reduce:
    input:
        block_sims,
    output:
        f"{RESULTS}/reduced/{{block}}.h5",
    log:
        f"{RESULTS}/logs/reduce/{{block}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/reduce/{{block}}.tsv"
    conda:
        "../../envs/interface4d.yaml"
    params:
        reduction=reduction_params,
    shell:
        "interface4d reduce {input} -o {output} --reduction {params.reduction:q}"
        " --workers {threads} 2> {log}"


rule gather_classify:
    input:
        classify_inputs,
    output:
        h5=f"{RESULTS}/datasets/classify.h5",
        manifest=f"{RESULTS}/datasets/classify.csv",
    log:
        f"{RESULTS}/logs/gather_classify.log",
    benchmark:
        f"{RESULTS}/benchmarks/gather_classify.tsv"
    conda:
        "../../envs/interface4d.yaml"
    params:
        spec=gather_params(),
    shell:
        "interface4d gather classify {input} --spec {params.spec:q}"
        " -o {output.h5} --manifest {output.manifest} 2> {log}"


rule gather_regress:
    input:
        regress_inputs,
    output:
        h5=f"{RESULTS}/datasets/regress_t{{thickness}}.h5",
        manifest=f"{RESULTS}/datasets/regress_t{{thickness}}.csv",
    log:
        f"{RESULTS}/logs/gather_regress/t{{thickness}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/gather_regress/t{{thickness}}.tsv"
    conda:
        "../../envs/interface4d.yaml"
    params:
        spec=lambda w: gather_params(float(w.thickness)),
    shell:
        "interface4d gather regress {input} --spec {params.spec:q}"
        " -o {output.h5} --manifest {output.manifest} 2> {log}"
