# 1. Structures. At scale every simulate job builds its own structure in-process (~1 s), so
# there is no job per structure; this rule only draws a few for the report (Fig. 2a-c).


rule draw_structures:
    output:
        report(
            f"{RESULTS}/figures/structures.png",
            caption="../report/structures.rst",
            category="1. Structures",
        ),
    log:
        f"{RESULTS}/logs/draw_structures.log",
    conda:
        "../../envs/interface4d.yaml"
    params:
        structures=drawn_structures(),
    shell:
        "interface4d plot-structures --settings {params.structures:q} -o {output} 2> {log}"
