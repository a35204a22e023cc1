set terminal pngcairo size 1000,560 font "sans,10" noenhanced
set output "cpu_per_txn.png"
set title "Proxy CPU per transaction (utime+stime; connect_storm is in the table: a login per transaction)"
set ylabel "µs per transaction"
set datafile missing '-'
set style fill solid
set boxwidth 0.200
set yrange [0:*]
set xrange [-0.6:1.6]
set xtics ("select_simple" 0, "rate_10k" 1)
set grid ytics
set key top right
plot "cpu_per_txn.dat" using ($0+-0.300):2:(0.180) with boxes fs solid 0.85 lc rgb "#1f77b4" title "PgBouncer 1.18", \
     "cpu_per_txn.dat" using ($0+-0.300):2:3:4 with yerrorbars lc rgb "black" pt 0 notitle, \
     "cpu_per_txn.dat" using ($0+-0.100):5:(0.180) with boxes fs solid 0.85 lc rgb "#d62728" title "heliosproxy", \
     "cpu_per_txn.dat" using ($0+-0.100):5:6:7 with yerrorbars lc rgb "black" pt 0 notitle, \
     "cpu_per_txn.dat" using ($0+0.100):8:(0.180) with boxes fs solid 0.85 lc rgb "#e377c2" title "heliosproxy, workers = 1 (fixed)", \
     "cpu_per_txn.dat" using ($0+0.100):8:9:10 with yerrorbars lc rgb "black" pt 0 notitle, \
     "cpu_per_txn.dat" using ($0+0.300):11:(0.180) with boxes fs solid 0.85 lc rgb "#9467bd" title "heliosproxy, workers = 2 (fixed)", \
     "cpu_per_txn.dat" using ($0+0.300):11:12:13 with yerrorbars lc rgb "black" pt 0 notitle, \
     5.0 with lines dt 2 lw 2 lc rgb "#2ca02c" title "target ≤ 5 µs"
