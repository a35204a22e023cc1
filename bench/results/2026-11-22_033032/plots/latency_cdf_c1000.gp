set terminal pngcairo size 1000,560 font "sans,10" noenhanced
set output "latency_cdf_c1000.png"
set title "Latency CDF: pgbench -S, 1000 clients through a pool of 20 backends (all runs merged)"
set xlabel 'latency (ms, log scale)'
set ylabel 'transactions at or below (%)'
set logscale x
set yrange [0:100]
set grid
set key bottom right
plot "latency_cdf_c1000_pgbouncer.dat" using 1:($2*100) with lines lw 2 lc rgb "#1f77b4" title "PgBouncer 1.18 (p50 42.564 ms, p99 65.272 ms)", \
     "latency_cdf_c1000_helios.dat" using 1:($2*100) with lines lw 2 lc rgb "#d62728" title "heliosproxy (p50 33.667 ms, p99 54.318 ms)"
