set terminal pngcairo size 1000,560 font "sans,10" noenhanced
set output "tps.png"
set title "Throughput per scenario (median, min–max)"
set ylabel "transactions per second"
set datafile missing '-'
set style fill solid
set boxwidth 0.267
set yrange [0:*]
set xrange [-0.6:5.6]
set xtics ("select_simple" 0, "select_extended" 1, "rate_10k" 2, "connect_storm" 3, "c1000" 4, "pinned" 5)
set grid ytics
set key top right
plot "tps.dat" using ($0+-0.267):2:(0.240) with boxes fs solid 0.85 lc rgb "#4d4d4d" title "PostgreSQL direct", \
     "tps.dat" using ($0+-0.267):2:3:4 with yerrorbars lc rgb "black" pt 0 notitle, \
     "tps.dat" using ($0+0.000):5:(0.240) with boxes fs solid 0.85 lc rgb "#1f77b4" title "PgBouncer 1.18", \
     "tps.dat" using ($0+0.000):5:6:7 with yerrorbars lc rgb "black" pt 0 notitle, \
     "tps.dat" using ($0+0.267):8:(0.240) with boxes fs solid 0.85 lc rgb "#d62728" title "heliosproxy", \
     "tps.dat" using ($0+0.267):8:9:10 with yerrorbars lc rgb "black" pt 0 notitle
